"""The feed path: feed A and B frames -> frame filters -> MoldUDP64 sequencer
-> ITCH decoder -> order book -> records.  ``model`` is its specification,
``hdl`` the MyHDL top level, ``equivalence`` the long run against the golden
host code."""
