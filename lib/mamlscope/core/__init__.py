"""The training core: tasks (:mod:`.data`) → networks (:mod:`.models`) → the inner loop
(:mod:`.inner`) → the outer loops (:mod:`.meta`) → evaluation (:mod:`.evaluate`), and the run
cache (:mod:`.runs`). Imports only the ground floor (``paths``, ``progress``, ``stats``, ``metrics``)."""
