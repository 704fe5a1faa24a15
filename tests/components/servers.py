"""Local DNS and TLS servers for checker tests, each on a free port in a thread."""

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dns.message
import dns.rrset
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@contextmanager
def dns_server(records: dict[tuple[str, str], list[str]]) -> Iterator[int]:
    """Answer UDP queries from ``records`` ({(name, type): [values]}); yields the
    port. Other names get NXDOMAIN."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            sock.sendto(_answer(dns.message.from_wire(wire), records).to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def _answer(query: dns.message.Message, records: dict) -> dns.message.Message:
    response = dns.message.make_response(query)
    question = query.question[0]
    name = question.name.to_text()
    kind = dns.rdatatype.to_text(question.rdtype)
    values = records.get((name, kind))
    if values is None:
        response.set_rcode(dns.rcode.NXDOMAIN)
    else:
        response.answer.append(dns.rrset.from_text_list(name, 60, "IN", kind, values))
    return response


def self_signed(directory: Path, *, days: float) -> tuple[Path, Path]:
    """A self-signed certificate for localhost valid ``days`` more; (cert, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@contextmanager
def tls_server(cert_file: Path, key_file: Path) -> Iterator[int]:
    """Accept TLS connections with the given certificate; yields the port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def close(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(close, "127.0.0.1", 0, ssl=context)

    async def stop(server: asyncio.Server) -> None:
        server.close()
        await server.wait_closed()

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        # On the server's own loop: asyncio servers are not thread-safe, and closing
        # one from this thread raced its loop (TypeError in Server._wakeup).
        asyncio.run_coroutine_threadsafe(stop(server), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
