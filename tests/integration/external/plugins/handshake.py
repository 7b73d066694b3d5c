"""A fake plugin whose handshake goes wrong in the way argv[1] names."""

from __future__ import annotations

import os
import sys
import time

mode = sys.argv[1]
if mode == "silent":
    time.sleep(60)
elif mode == "exit":
    sys.stderr.write("ERROR cannot open my database\n")
    sys.exit(4)
elif mode == "garbage":
    print("hello, I am a plugin")
elif mode == "version":
    print("1|7|unix|/tmp/nothing|grpc|")
elif mode == "core":
    print("2|1|unix|/tmp/nothing|grpc|")
elif mode == "netrpc":
    print("1|1|unix|/tmp/nothing|netrpc|")
elif mode == "nosocket":
    print(f"1|1|unix|{os.environ['PLUGIN_UNIX_SOCKET_DIR']}/missing.sock|grpc|")
elif mode == "cookie":
    ok = os.environ.get("ELEMTA_PLUGIN_MAGIC_COOKIE") == "3f1b7c52e0a94d6c8e2f5a71c4d9b806"
    sys.stderr.write(f"cookie {'ok' if ok else 'missing'}; env keys {sorted(os.environ)}\n")
    sys.exit(0 if ok else 1)
sys.stdout.flush()
time.sleep(60)
