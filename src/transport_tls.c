/* transport_tls.c - placeholder, implemented in its own change */
