"""Which runs the book trains and how: the profiles (:mod:`.profiles`), the plan of runs per
chapter (:mod:`.plan`), their schedule on Dask (:mod:`.schedule`) and the ``runs`` command
(:mod:`.cli`). Imports the core and the ground floor."""
