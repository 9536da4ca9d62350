"""ITCH 5.0 decoder: sequenced ITCH messages in, the order book's internal
events out.  ``model`` is its specification, ``hdl`` the MyHDL."""
