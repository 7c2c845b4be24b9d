/* transport_tcp.c - placeholder, implemented in its own change */
