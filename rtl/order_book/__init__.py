"""Order book: ITCH events in, book-update and trade records out, for the
tracked stock locates.  ``model`` is its specification, ``hdl`` the MyHDL."""
