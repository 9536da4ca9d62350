"""Risk gate: quote words in, quote and cancel records to the host out.
``model`` is its specification, ``hdl`` the MyHDL, ``quote_path`` the
quoter and gate chained as one top level."""
