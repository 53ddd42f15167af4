"""The CPU one send costs in-process: `python -m bench.send_cpu [--sends N] [--profile]`.

The Vonage sender posts to the benchmark's stand-in (its own process), one send at a time, on
one thread: what is measured is the sender's own path (the SDK's `Sms` and request model,
requests' adapter, urllib3, TLS), with no server and no contention around it.
"""

import argparse
import cProfile
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path

from bench.__main__ import standin
from private_sms.senders.vonage import VonageSender

TEXT = "I'm outside the station, by the taxi rank"


def main() -> None:
    """Print the CPU milliseconds a send costs (five runs and their median), or a profile."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=2000, help="sends a run (2000)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, standin(0, Path(directory)) as found:
        host, ca_file = found
        os.environ["REQUESTS_CA_BUNDLE"] = ca_file
        sender = VonageSender("abcd1234", "abcdef0123456789", rest_host=host)
        for _ in range(300):  # warm the connection pool and the caches
            send(sender)
        if args.profile:
            profile = cProfile.Profile()
            profile.runcall(lambda: [send(sender) for _ in range(args.sends)])
            pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
            return
        runs = []
        for _ in range(5):
            start = time.process_time()
            for _ in range(args.sends):
                send(sender)
            runs.append((time.process_time() - start) / args.sends * 1000)
    shown = " ".join(f"{run:.3f}" for run in runs)
    print(f"CPU ms a send: {shown}; median {statistics.median(runs):.3f}")


def send(sender: VonageSender) -> None:
    """Send one text from the virtual number to a person."""
    sender.send("447700900000", "447700900001", TEXT)


if __name__ == "__main__":
    main()
