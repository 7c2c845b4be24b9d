/* smtp_reply.c - placeholder, implemented in its own change */
