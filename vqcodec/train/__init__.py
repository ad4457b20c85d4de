"""Training: tokenizer (VQ-GAN), prior (GPT over token grids), export to a model folder."""
