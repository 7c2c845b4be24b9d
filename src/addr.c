/* addr.c - placeholder, implemented in its own change */
