"""A policy bundle on disk (model.conf, policy.csv, tests/): load, check, compile, hash, test."""

from policy_engine.bundle.checks import BundleCheck, check_bundle, inspect_bundle
from policy_engine.bundle.digest import bundle_digest
from policy_engine.bundle.loader import Bundle, bundle_schema, compile_bundle, load_bundle, load_bundles
from policy_engine.bundle.schema import AttributeSchema
from policy_engine.bundle.tests import CaseResult, TestReport, run_bundle_tests

__all__ = [
    "AttributeSchema",
    "Bundle",
    "BundleCheck",
    "bundle_schema",
    "CaseResult",
    "TestReport",
    "bundle_digest",
    "check_bundle",
    "compile_bundle",
    "inspect_bundle",
    "load_bundle",
    "load_bundles",
    "run_bundle_tests",
]
