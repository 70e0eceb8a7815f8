"""A small user script of xpnn's public API, which ``mypy --strict`` accepts (tests/test_typing.py)."""
import sys

import numpy as np

import xpnn as nn


class MLP(nn.Module):
    features: int = 8

    @nn.compact
    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = nn.LayerNorm()(nn.relu(nn.Dense(self.features)(x)))
        y: np.ndarray = nn.Dense(1)(x)
        return y


def main(path: str) -> None:
    x = np.ones((4, 3), np.float32)
    model = MLP(features=16)
    variables = model.init(nn.random.key(0), x)
    out = model.apply(variables, x)
    nn.save(path, variables)
    again = nn.load(path, like=x)
    kernel = nn.initializers.lecun_normal()(nn.random.key(1), (3, 4))
    print(nn.gelu(x, approximate=False), nn.softmax(x, axis=-1), out, nn.tree_map(np.shape, again), kernel)


if __name__ == "__main__":
    main(sys.argv[1])
