"""Fund requests (pre-approval) and claims: their state machines, amounts and approval policy.

So far the pure rules (`rules.py`); the tables, services, pages and API follow.
"""
