"""The analyses, one module per group of questions, each with its controls: representations
(RSA, CKA, CCA), feature reuse, objective landscapes, the trajectory regulariser, features.
Imports training, the core and the ground floor."""
