"""A second module with a clashing name, for the code generator's import aliases."""

import dataclasses


@dataclasses.dataclass
class ModelConfig:
    width: int = 1
