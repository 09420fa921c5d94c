"""One module per verb of the ``ablbench`` CLI; each defines ``register(app)``."""
