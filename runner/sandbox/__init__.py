"""The restricted evaluation of expressions and scripts, with budgets of time and memory."""
