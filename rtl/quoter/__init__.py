"""Quoter: theoretical values in, two-sided quotes out.  ``model`` is its
specification, ``hdl`` the MyHDL, ``stream`` the quote word it hands the
risk gate."""
