"""Training glue: LightningModules (search, train), metrics and callbacks (e.g. ``dgs.DGSCallback``)."""
