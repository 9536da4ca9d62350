"""MoldUDP64 sequencer: A/B arbitration of two feeds' Mold packets into one
stream of ITCH messages.  ``model`` is its specification, ``hdl`` the MyHDL."""
