"""Releases and channels: version everything a candidate's answers depend on as one immutable,
content-addressed object, promote it only on evidence, know what was live when, roll back.

The Python API (the CLI `rung release ...` is a thin layer over it; docs/releases.md):

    store = ReleaseStore.for_config(config)              # the run store's database + artifacts
    created = create_release(config, "rag", store)       # snapshot + evidence, files copied by hash
    promote(store, created.release.id, "production", config.gate, reason="...")
    rollback(store, "production")                        # to the last release good there
    set_flag(store, "production", "adapter", "off")

    # read side (the gateway): per request, cheap
    rel = live_release(store, "production@acme")          # tenant channel, else its base channel
    flags = channel_flags(store, "production@acme")       # {"adapter": "off"} (non-defaults)
    cand = apply_flags(CandidateConfig(**...), flags)     # what to answer with
    store.load_release(id_or_prefix); channel_state(store, "production", at="2026-03-20T14:05")
    materialize(store, rel, folder)                       # rung.yaml + files as released

A release id is the sha256 of the canonical manifest's content and evidence (not its creation
time, author, note or git commit), so the same files, configuration and runs give the same id on
any machine. Errors: ReleaseError, PromotionRefused (with the check's numbers), ChannelConflict.
"""

from rung.ops.releases.channels import (
    FLAGS,
    PromotionCheck,
    apply_flags,
    channel_flags,
    channel_state,
    check_promotion,
    last_good,
    live_release,
    promote,
    rollback,
    set_flag,
)
from rung.ops.releases.create import DECISION_FILE, Created, create_release, read_decision
from rung.ops.releases.errors import ChannelConflict, PromotionRefused, ReleaseError
from rung.ops.releases.manifest import Snapshot, canonical, release_id, snapshot
from rung.ops.releases.store import ChannelEvent, ChannelState, Release, ReleaseStore
from rung.ops.releases.verify import Change, Verification, diff_content, diff_releases, materialize, verify_release

__all__ = [
    "FLAGS", "DECISION_FILE", "Change", "ChannelConflict", "ChannelEvent", "ChannelState", "Created",
    "PromotionCheck", "PromotionRefused", "Release", "ReleaseError", "ReleaseStore", "Snapshot",
    "Verification", "apply_flags", "canonical", "channel_flags", "channel_state", "check_promotion",
    "create_release", "diff_content", "diff_releases", "last_good", "live_release", "materialize",
    "promote", "read_decision", "release_id", "rollback", "set_flag", "snapshot", "verify_release",
]
