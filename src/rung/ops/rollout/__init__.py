"""Rollouts: move a channel to a new release in steps (canary weights or shadow traffic),
judged at each step on the traces (`judge`), promoted or rolled back by themselves (`machine`).
"""
