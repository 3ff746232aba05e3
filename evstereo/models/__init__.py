from evstereo.models.sgbm import SGBMStereo  # noqa: F401  (classical baseline, stand-in until the trained network ships)
