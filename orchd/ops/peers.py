"""Which other sites this site knows, and the first-contact check (ops layer).

A site is known once this site trusts a key of it or holds word from it: an event of its origin
(or a checkpoint left by pruning them), or a receipt it recorded for this site's bundles. Anything
addressed to another site (``bundle export --peer``, ``jobs submit --site``) is refused for a site
not known, before anything is written, unless the operator says it is a first contact
(``--new-peer``). A misspelt peer name then fails at once instead of travelling across the gap.
The check is the same for a bundle a schedule or the daemon's outbox writes: a peer named in
policy is known once its key is trusted, which an operator does before bundles can come back.
"""

from __future__ import annotations

from orchd.core.ports import TrustQueries
from orchd.errors import UnknownPeer


def known_sites(ledger: TrustQueries) -> list[str]:
    """Every other site this site trusts or has heard from, sorted."""
    sites = {key.site for key in ledger.trust_keys()}
    sites.update(ledger.heads(), ledger.checkpoints(), ledger.receipts())
    sites.discard(ledger.site_id)
    return sorted(sites)


def check_known(ledger: TrustQueries, site: str, *, new_peer: bool) -> None:
    """Refuse ``site`` unless it is known here or ``new_peer`` says it is a first contact."""
    if new_peer:
        return
    known = known_sites(ledger)
    if site not in known:
        raise UnknownPeer(site=site, known=", ".join(known) or "none")
