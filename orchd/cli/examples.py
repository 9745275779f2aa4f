"""The examples every command's ``--help`` ends with (issue "CLI conventions", point 5).

``EXAMPLES`` maps a command path, as typed after ``orchd`` (``""`` for ``orchd`` itself,
``"jobs"`` for the group, ``"jobs show"`` for a subcommand), to one to three
``(command_line, what_it_does)`` pairs: the line starts with ``orchd ``, what it does is a short
lower-case phrase with no final period. The job types, sources and schedules are those of the
example policy (``policies/examples/``); a job is named by its short form (the last 8 characters
of its id). Plain data, no imports: ``tests/unit/test_cli_examples.py`` checks that every command
has its examples and that each one parses as the command it shows.
"""

from __future__ import annotations

# a key id as `orchd keys list` shows it: the sha256 of the public key, in full
_KEY_ID = "3f9c2a7e5b1d4c8f0a6e2d9b7c5a3e1f8d6b4a2c0e9f7d5b3a1c8e6f4d2b0a9c"

EXAMPLES: dict[str, tuple[tuple[str, str], ...]] = {
    "": (
        ("orchd --state-dir /srv/orchd/enclave-7 status", "the status of another state dir's site"),
        ("orchd --policy-dir /etc/orchd/policies.new policy check", "check new policy files first"),
        ("orchd --socket /run/orchd/orchd.sock status", "ask the daemon at this socket"),
    ),
    "audit": (
        ("orchd audit tail --since -24h", "who changed what in the last day, and why"),
        ("orchd audit verify", "check every chain end to end"),
    ),
    "audit tail": (
        ("orchd audit tail --follow", "the 20 newest events, then each new one as it is recorded"),
        (
            "orchd audit tail --ticket OPS-1234 --since 2026-11-01",
            "every event recorded under one ticket since the first of november",
        ),
        (
            "orchd audit tail --type quota.set --since -7d --json",
            "the quota changes of the past week, one JSON envelope a line",
        ),
    ),
    "audit verify": (
        ("orchd audit verify", "check every chain and that the projections equal a rebuild"),
        ("orchd audit verify --json", "the report as JSON, progress as JSON lines on stderr"),
    ),
    "backfill": (
        (
            "orchd backfill nvd-hourly --from 2026-11-20T00:00:00Z --to 2026-11-20T02:59:59Z"
            ' --reason "nvd mirror outage" --ticket OPS-1234 --dry-run',
            "list the slots a three-hour outage missed; change nothing",
        ),
        (
            "orchd backfill osv-nightly --from -7d --to now"
            ' --reason "osv dump missing for a week" --ticket OPS-1234',
            "create the jobs of the past week's nightly slots the ledger lacks",
        ),
        (
            "orchd backfill ghsa-hourly --from yesterday --to today"
            ' --reason "ghsa share unmounted" --ticket OPS-1234 --json',
            "backfill yesterday's hourly slots, the slots as JSON",
        ),
    ),
    "bundle": (
        (
            "orchd bundle export --peer enclave --out /media/transfer/hq-to-enclave.orchkit",
            "write what the enclave lacks, to carry across the air gap",
        ),
        (
            "orchd bundle verify /media/transfer/enclave-to-hq.orchkit",
            "check a peer's bundle as an import would; write nothing",
        ),
    ),
    "bundle export": (
        (
            "orchd bundle export --peer enclave --out /media/transfer/hq-to-enclave.orchkit",
            "a bundle of the events the enclave has not acknowledged",
        ),
        (
            "orchd bundle export --outbox --peer enclave --json",
            "write it into the configured outbox, the summary as JSON",
        ),
        (
            "orchd bundle export --peer lab-2 --new-peer --full --format 1 --out lab-2.orchkit",
            "a first, full bundle for a new site not yet upgraded to format 2",
        ),
    ),
    "bundle import": (
        (
            "orchd bundle import --dry-run /media/transfer/enclave-to-hq.orchkit",
            "say what an import would change, requests and keys included; change nothing",
        ),
        ("orchd bundle import enclave-to-hq.orchkit --json", "import it, what was done as JSON"),
        (
            "orchd bundle import enclave-old.orchkit --allow-expired"
            ' --reason "courier held it for two months" --ticket OPS-1234',
            "import a bundle past its expiry, on the record",
        ),
    ),
    "bundle inspect": (
        (
            "orchd bundle inspect /media/transfer/orchd-inbox/quarantine/from-enclave.orchkit",
            "the manifest and signers of a quarantined bundle",
        ),
        ("orchd bundle inspect enclave-to-hq.orchkit --json", "the manifest as JSON"),
    ),
    "bundle verify": (
        (
            "orchd bundle verify /media/transfer/enclave-to-hq.orchkit",
            "check signature, trust and chains; exit 0 only if it would be accepted",
        ),
        (
            "orchd bundle verify relayed.orchkit --vouched-by-relay lab-2 --json",
            "would it import with lab-2's events taken on the relay's word, as JSON",
        ),
    ),
    "completion": (
        ("orchd completion bash > /etc/bash_completion.d/orchd", "install bash completion"),
        ("orchd completion zsh > ~/.zfunc/_orchd", "zsh completion, into a directory on $fpath"),
        ("orchd completion fish > ~/.config/fish/completions/orchd.fish", "fish completion"),
    ),
    "console": (
        ("orchd console", "a link to the console on a free loopback port"),
        ("orchd console --listen 127.0.0.1:8765", "on a port of your choice"),
        ("orchd console --link-only", "only the sign-in path, for ssh -L to the socket"),
    ),
    "doctor": (
        ("orchd doctor", "check the whole site, each problem with its fix"),
        ("orchd doctor --full --json", "verify every chain from seq 1 too, the findings as JSON"),
    ),
    "help": (
        ("orchd help", "every command, with what it does"),
        ("orchd help jobs submit", "one command's help, with its examples"),
        ("orchd help quota", "a group's commands"),
    ),
    "init": (
        ("orchd init --site-id hq", "create a new site: state dir, ledger and signing key"),
        (
            "orchd init --site-id hq --restore hq-last.orchkit --trust-key hq-old.pem"
            " --ticket OPS-1234",
            "rebuild a lost site from the last bundle it exported",
        ),
        ("orchd init --site-id enclave-7 --json", "create a site, the site and its key as JSON"),
    ),
    "jobs": (
        ("orchd jobs submit feed-refresh --source nvd", "refresh the nvd feed now"),
        ("orchd jobs list --state dead", "the jobs that ran out of attempts"),
        ("orchd jobs show 9ZA1B2C4", "one job by its short id: its runs and history"),
    ),
    "jobs cancel": (
        (
            'orchd jobs cancel 7Q2M4K8D --reason "covered by the nightly run"',
            "cancel a queued or running job",
        ),
        (
            'orchd jobs cancel 7Q2M4K8D --reason "wrong scope" --ticket OPS-1234 --json',
            "the same under a ticket, the outcome as JSON",
        ),
    ),
    "jobs list": (
        ("orchd jobs list --state dead --since -24h", "dead jobs submitted in the last 24 hours"),
        (
            "orchd jobs list --source nvd --type feed-refresh --since today --json",
            "today's nvd refreshes as a JSON array",
        ),
        ("orchd jobs list --origin enclave --after 9ZA1B2C4", "the enclave's jobs, next page"),
    ),
    "jobs logs": (
        ("orchd jobs logs 9ZA1B2C4", "the output of the job's last run"),
        ("orchd jobs logs 9ZA1B2C4 --follow", "keep printing it until the run ends"),
        ("orchd jobs logs 9ZA1B2C4 --run 2 --json", "its second run's output as JSON lines"),
    ),
    "jobs show": (
        ("orchd jobs show 9ZA1B2C4", "a job by its short id: its runs, output and history"),
        ("orchd jobs show 01KBX7M2Q4R9T3V5W79ZA1B2C4 --json", "by its full id, as JSON"),
    ),
    "jobs submit": (
        (
            "orchd jobs submit feed-refresh --source nvd --param window=48h --key nvd-2026-11-20",
            "refresh nvd over two days; the same key again changes nothing",
        ),
        (
            "orchd jobs submit rescan --param scope=dmz --site enclave",
            "ask the enclave to rescan its dmz, in the next bundle for it",
        ),
        ("orchd jobs submit export --priority 20 --spool", "queue an export through the spool"),
    ),
    "keys": (
        ("orchd keys show", "this site's key id and public key"),
        ("orchd keys list", "the trust store and the key changes peers announced"),
    ),
    "keys export-public": (
        ("orchd keys export-public /media/transfer/hq.pem", "this site's public key, for peers"),
        ("orchd keys export-public hq.pem --json", "the same, the key written and where as JSON"),
    ),
    "keys list": (
        ("orchd keys list", "the keys trusted for each peer, and rotations peers announced"),
        ("orchd keys list --json", "the trust store as JSON"),
    ),
    "keys revoke": (
        (
            f'orchd keys revoke {_KEY_ID} --reason "key leaked" --ticket OPS-1234',
            "stop trusting a key and the keys trusted only through its rotations",
        ),
        (
            f"orchd keys revoke {_KEY_ID} --keep-successors"
            ' --reason "old HSM retired" --ticket OPS-1234 --json',
            "revoke only that key, the outcome as JSON",
        ),
    ),
    "keys rotate": (
        (
            'orchd keys rotate --reason "yearly rotation" --ticket OPS-1234',
            "a new signing key, vouched for by the old one",
        ),
        (
            'orchd keys rotate --reason "HSM replaced" --ticket OPS-1234 --json',
            "the same, the old and the new key id as JSON",
        ),
    ),
    "keys show": (
        ("orchd keys show", "this site's key id and public key"),
        ("orchd keys show --json", "the same as JSON"),
    ),
    "keys trust": (
        (
            'orchd keys trust enclave enclave.pem --reason "key ceremony" --ticket OPS-1234',
            "trust the enclave's key for its bundles",
        ),
        (
            "orchd keys trust lab-2 lab-2.pem --expires 2027-06-30T00:00:00Z"
            ' --reason "pilot until june" --ticket OPS-1234 --json',
            "trust a pilot site's key until a date, the outcome as JSON",
        ),
    ),
    "ledger": (
        ("orchd ledger verify", "check every chain and the projections"),
        ("orchd ledger backup /backup/hq-2026-11-20.db", "an online, verified copy of the ledger"),
        ("orchd ledger prune --dry-run", "what the policy's retention would remove"),
    ),
    "ledger backup": (
        ("orchd ledger backup /backup/hq-2026-11-20.db", "an online copy, verified end to end"),
        ("orchd ledger backup /backup/hq-2026-11-20.db --json", "the same, the report as JSON"),
    ),
    "ledger compact": (
        ("orchd ledger compact", "give back the space a prune freed (daemon stopped)"),
        ("orchd ledger compact --json", "the same, the sizes as JSON"),
    ),
    "ledger prune": (
        ("orchd ledger prune --dry-run", "what would go, per origin, and what keeps the rest"),
        ("orchd ledger prune --json", "prune now, the plan and its outcome as JSON"),
    ),
    "ledger rebuild": (
        ("orchd ledger rebuild", "re-derive every projection from the event log"),
        ("orchd ledger rebuild --json", "the same, the projections' digest as JSON"),
    ),
    "ledger restore": (
        ("orchd ledger restore /backup/hq-2026-11-20.db --ticket OPS-1234", "put a backup back"),
        (
            "orchd ledger restore /backup/hq-2026-11-20.db --ticket OPS-1234"
            ' --reason "disk replaced after I/O errors" --json',
            "the same with its reason, the outcome as JSON",
        ),
    ),
    "ledger verify": (
        ("orchd ledger verify", "check every chain and that the projections equal a rebuild"),
        ("orchd ledger verify --json", "the report as JSON, progress as JSON lines on stderr"),
    ),
    "metrics": (
        ("orchd metrics", "the prometheus text the daemon serves at GET /metrics"),
        ("orchd metrics | grep orchd_dead_letter_jobs", "how many jobs are dead"),
        ("orchd metrics --json", "the samples as a JSON array"),
    ),
    "policy": (
        ("orchd policy check", "check every policy file and authz.yaml"),
        ("orchd --policy-dir policies/examples policy check", "check the example policy"),
    ),
    "policy check": (
        ("orchd policy check", "name the first mistake of the policy files, if any"),
        ("orchd --policy-dir /etc/orchd/policies.new policy check", "check new policy files first"),
        ("orchd policy check --json", "the sources, job types, schedules and quotas as JSON"),
    ),
    "quota": (
        ("orchd quota show", "the limits in force and where each comes from"),
        (
            "orchd quota set source:nvd --concurrency 2"
            ' --reason "catch up after the outage" --ticket OPS-1234',
            "let two nvd runs go at once until reset",
        ),
    ),
    "quota reset": (
        (
            'orchd quota reset source:nvd --reason "caught up" --ticket OPS-1234',
            "drop this site's override of the nvd limits",
        ),
        (
            "orchd quota reset job_type:rescan --all-sites"
            ' --reason "audit over" --ticket OPS-1234 --json',
            "drop the override for every site, the outcome as JSON",
        ),
    ),
    "quota set": (
        (
            "orchd quota set source:nvd --rate 30/hour --burst 5"
            ' --reason "catch up after the outage" --ticket OPS-1234',
            "let nvd refreshes run faster until reset",
        ),
        (
            "orchd quota set job_type:rescan --concurrency 0"
            ' --reason "freeze during the audit" --ticket OPS-1234',
            "stop every rescan on this site until reset",
        ),
        (
            "orchd quota set job_type:export --daily 4 --site enclave"
            ' --reason "two more exports a day" --ticket OPS-1234 --json',
            "raise the enclave's daily cap, the outcome as JSON",
        ),
    ),
    "quota show": (
        ("orchd quota show", "each target's limits in force and where each comes from"),
        ("orchd quota show --json", "the effective quotas as JSON"),
    ),
    "replay": (
        (
            'orchd replay 9ZA1B2C4 7Q2M4K8D --reason "nvd mirror back" --ticket OPS-1234',
            "run two jobs again, as new jobs",
        ),
        (
            "orchd replay --type feed-refresh --state dead --since -2h"
            ' --reason "nvd mirror back" --ticket OPS-1234',
            "replay every refresh that died in the last two hours",
        ),
        (
            "orchd replay --type rescan --since yesterday"
            ' --reason "scanner fixed" --ticket OPS-1234 --json',
            "replay the rescans dead since yesterday, the outcome as JSON",
        ),
    ),
    "run": (
        ("orchd run", "the daemon in the foreground, as systemd starts it"),
        ("orchd run --log-level debug --rescan 5", "with debug logs, rescanning every 5 seconds"),
        ("orchd --config /etc/orchd/orchd.yaml run --grace 120", "drain for two minutes on stop"),
    ),
    "schedules": (
        ("orchd schedules list", "each schedule's next and last slot, like systemctl list-timers"),
        ("orchd schedules list --json", "the schedules as a JSON array"),
    ),
    "schedules list": (
        ("orchd schedules list", "what runs next, what ran last and what is due"),
        ("orchd schedules list --json", "the schedules as a JSON array"),
    ),
    "sources": (
        (
            'orchd sources pause nvd --reason "mirror returns HTTP 500" --ticket OPS-1234',
            "start no nvd runs on this site until resumed",
        ),
        (
            'orchd sources resume nvd --reason "mirror fixed" --ticket OPS-1234',
            "let nvd runs start again",
        ),
    ),
    "sources pause": (
        (
            'orchd sources pause nvd --reason "mirror returns HTTP 500" --ticket OPS-1234',
            "stop starting nvd runs here; its jobs wait, throttled",
        ),
        (
            'orchd sources pause vendor-vex --reason "share migration" --ticket OPS-1234 --json',
            "pause the vex source, the outcome as JSON",
        ),
    ),
    "sources resume": (
        (
            'orchd sources resume nvd --reason "mirror fixed" --ticket OPS-1234',
            "let nvd runs start again",
        ),
        (
            'orchd sources resume vendor-vex --reason "share back" --ticket OPS-1234 --json',
            "resume the vex source, the outcome as JSON",
        ),
    ),
    "status": (
        ("orchd status", "queues, throttled and dead jobs, freshness, peers"),
        ("orchd status --all-origins", "the same, counting every origin's jobs"),
        ("orchd status --json", "the status as JSON"),
    ),
    "worker": (
        (
            "orchd worker --site hq --name w-1 --url nats://nats.site:4222 --job-type rescan "
            "--allow /usr/bin/rescan --password-file /etc/orchd-worker/nats.password",
            "run hq's rescans here, as the NATS user w-1",
        ),
    ),
    "workers": (
        ("orchd workers", "the workers the policy names, and when the daemon last heard each"),
        ("orchd workers --authorization /etc/orchd/nats", "the NATS server's users, as JSON"),
    ),
    "events": (("orchd events follow --nats", "the site's events from NATS, one JSON line each"),),
    "events follow": (("orchd events follow --nats --type run.ended --new", "new ends of runs"),),
    "work": (
        ("orchd work --until-idle", "run the queue here, without the daemon, until it is done"),
        ("orchd work --until-idle --max-wait 0 --json", "run what is ready now, as JSON"),
        ("orchd work --kill-grace 30", "run jobs until stopped, giving each 30 s to stop"),
    ),
}
