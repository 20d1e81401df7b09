"""audiomnist: spoken digits to numbers, evaluated on speakers the model never heard."""

__version__ = "0.1.0"
