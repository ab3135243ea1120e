"""Training, export and generation for the composer models."""

from serving.quiet import quiet_tensorflow

quiet_tensorflow()  # every trainer module needs TensorFlow: import it once, without the noise
