"""The book: notebooks and the table of contents, executing pages, ``rerun``, the execution
graph, the scorecard, reports, figures. Imports the verdicts and everything below them."""
