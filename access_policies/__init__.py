"""Access policies: roles, grants, the decision engine and masking. Pure: no I/O but
reading the policy files it is pointed at."""

from access_policies.decide import ColumnAccess, Decision, decide
from access_policies.model import Grant, Policy, PolicyError, Role, load_policies

__all__ = ["ColumnAccess", "Decision", "Grant", "Policy", "PolicyError", "Role", "decide",
           "load_policies"]
