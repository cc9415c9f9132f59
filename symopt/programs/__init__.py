"""Programs: the update-rule language, its function library and its checks."""

from symopt.programs import baselines
from symopt.programs.checker import check
from symopt.programs.errors import ProgramError
from symopt.programs.functions import Function, FUNCTIONS, HERO_FUNCTIONS, Kind
from symopt.programs.parser import parse
from symopt.programs.program import Assign, Call, Const, Expr, Program, Var

__all__ = ["Assign", "baselines", "Call", "Const", "Expr", "FUNCTIONS", "Function", "HERO_FUNCTIONS", "Kind",
           "Program", "ProgramError", "Var", "check", "parse"]
