"""Who is calling, and who the end user is: verified tokens, mTLS peers, the system policy.

Knows nothing about servicers: it turns credentials into a Principal, and
answers whether a Principal may call an RPC.
"""

from policy_engine.auth.authorizer import RpcAuthorizer
from policy_engine.auth.principal import Principal
from policy_engine.auth.subjects import SubjectTokenResolver
from policy_engine.auth.tokens import TokenVerifier

__all__ = ["Principal", "RpcAuthorizer", "SubjectTokenResolver", "TokenVerifier"]
