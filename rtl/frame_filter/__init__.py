"""Ethernet / 802.1Q / IPv4 / UDP frame filter: the first block of the
market-data path.  ``model`` is its specification, ``hdl`` the MyHDL."""
