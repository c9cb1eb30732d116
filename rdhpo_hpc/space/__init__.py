"""Search spaces: leaf parameters and conditional (hierarchical) spaces."""

from .params import Categorical, Fixed, Float, Int, Param
from .space import Choice, Dim, Space, param_from_spec

__all__ = ["Categorical", "Choice", "Dim", "Fixed", "Float", "Int", "Param", "Space", "param_from_spec"]
