"""Request limits, documented in one place and enforced before any policy work.

| what                                   | limit      |
|----------------------------------------|------------|
| tenant, action, policy set, request id | 256 chars  |
| subject, actor and resource ids, kind  | 256 chars  |
| attribute Struct (each), serialized    | 16 KiB     |
| attribute nesting depth                | 8 levels   |
| attributes per entity                  | 64         |
| attribute name                         | 64 chars, a Python identifier |
| pushed bundle (admin PushVersion)      | 64 MiB     |
| BatchCheck items, FilterAllowed candidates | 1,000  |
| whole BatchCheck / FilterAllowed / ListAllowed request | 1 MiB |
| concrete ids one ListAllowed verifies  | 10,000     |
"""

from __future__ import annotations

MAX_ID_LENGTH = 256
MAX_STRUCT_BYTES = 16 * 1024
MAX_NESTING_DEPTH = 8
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_NAME_LENGTH = 64
# A pushed bundle (model, rules and tests), as the admin API receives it.
MAX_BUNDLE_BYTES = 64 * 1024 * 1024
# The transport's cap on any one message; Check-sized requests are bounded field by field above.
MAX_MESSAGE_BYTES = MAX_BUNDLE_BYTES + 1024 * 1024
# Items of one BatchCheck, candidates of one FilterAllowed.
MAX_BATCH_ITEMS = 1000
# A whole BatchCheck / FilterAllowed / ListAllowed request, checked before any decision.
MAX_BATCH_REQUEST_BYTES = 1024 * 1024
# Concrete ids one ListAllowed verifies with a decision each; beyond, the answer is partial.
MAX_LIST_CANDIDATES = 10_000
