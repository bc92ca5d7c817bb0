"""A local SMTP server for souk's mail tests (aiosmtpd from PyPI).

Usage: smtp_sink.py PORT DIR. Listens on 127.0.0.1:PORT and writes every message it accepts to
DIR as <n>.eml. The first time it sees a Message-ID it answers 451 (try again later), so the test
sees souk retry; a message it has accepted before is accepted and written again, so a duplicate
send shows as two files. A message to an address starting "bounce@" is refused for good (550).
Prints "ready" once listening; stops when stdin closes.
"""

import email
import os
import sys

from aiosmtpd.controller import Controller


class Sink:
    def __init__(self, directory):
        self.directory = directory
        self.seen = set()
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        if any(to.startswith("bounce@") for to in envelope.rcpt_tos):
            return "550 5.1.1 No such mailbox"
        message = email.message_from_bytes(envelope.content)
        message_id = message.get("Message-ID", "")
        if message_id not in self.seen:
            self.seen.add(message_id)
            return "451 4.3.0 Try again later"
        self.count += 1
        path = os.path.join(self.directory, f"{self.count}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(envelope.content)
        os.rename(path + ".tmp", path)
        return "250 2.0.0 Accepted"


def main():
    port, directory = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Sink(directory), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
