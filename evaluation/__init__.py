"""How good is a model's music: objective metrics and the evaluate CLI."""
