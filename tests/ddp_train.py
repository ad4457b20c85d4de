"""Worker for test_training.py's data-parallel test, started by torchrun: a few steps of a tiny
tokenizer, GAN on from the second step, dead-code restarts every two steps."""
import sys

from vqcodec.tokenizer import TokenizerConfig
from vqcodec.train.tokenizer import TokenizerTrainConfig, train_tokenizer

if __name__ == "__main__":
    folder, out = sys.argv[1], sys.argv[2]
    train_tokenizer(TokenizerTrainConfig(data=folder, out=out, steps=4, batch=2, crop=32, lpips_weight=0.0,
                                         disc_start=1, restart_every=2, ckpt_every=2, log_every=1),
                    TokenizerConfig(channels=(8, 16), unshuffle=2, code_dim=4, codebook_size=16, depth=2))
