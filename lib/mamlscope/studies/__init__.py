"""Studies beside the book, kept as records: the recipe study, the inner-loop claims under both
recipes, a second seed (replicas) and the long-regime trial. They call the measuring functions
the chapters call, never copies of their cells. The top of the library."""
