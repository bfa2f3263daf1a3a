"""What `gatecheck provision` still has to do, given what the device's data directory holds.

Pure: :func:`plan` takes the facts about the data directory
(:class:`DirState`, gathered by appliance/provision.py) and what the person
asked for (:class:`Request`), and returns the steps left, or raises
:class:`Refusal` with one line. Every step leaves a file behind that says
it is done, so a run killed at any moment is resumed by running the same
command again (docs/provisioning.md, "Interrupted"):

=================  =============================================================
step               done when the data directory holds
=================  =============================================================
make the key       ``device.key`` (``device.key.next`` while re-enrolling)
enrol              ``enrolment-answer.json``: the registry's answer, for that key
retire             the old enrolment moved to ``retired/<old device id>/``
write              ``enrolment.json`` for the key (sync/enrolment.py)
sync, verify       ``provisioned.json`` for the key
=================  =============================================================

The registry's answer is saved before anything else happens to it because
the code is spent the moment the registry answers: without the saved answer
a crash there would need a new code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlsplit

from appliance.config import is_loopback_host

#: Exit status of a run refused because the device is already provisioned (docs/provisioning.md).
EXIT_ALREADY_PROVISIONED = 3


class Step(Enum):
    MAKE_KEY = "make the device key"
    MAKE_NEXT_KEY = "make a new device key"
    ENROLL = "enrol with the code"
    RETIRE = "retire the old enrolment"
    WRITE = "write the configuration"
    SYNC = "run the first full sync"
    VERIFY = "verify the lists"
    FINISH = "record the device as provisioned"


_AFTER_ENROLMENT = (Step.WRITE, Step.SYNC, Step.VERIFY, Step.FINISH)


class ProvisionError(Exception):
    """Provisioning cannot go on, as one line; ``exit_code`` is the command's exit status."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Refusal(ProvisionError):
    """What was asked does not fit the data directory's state; nothing was changed."""


class AlreadyProvisioned(Refusal):
    exit_code = EXIT_ALREADY_PROVISIONED


@dataclass(frozen=True)
class DirState:
    """What the data directory holds, as far as provisioning is concerned. Ids are device ids."""

    #: ``device.key``'s device id; None when there is no key file.
    key_id: str | None = None
    #: Why ``device.key`` exists but cannot be used (unreadable, not Ed25519, readable by others).
    key_problem: str | None = None
    #: ``device.key.next``'s device id: the key a re-enrolment enrols.
    next_key_id: str | None = None
    #: The device id the saved enrolment answer is for, and the registry that gave it.
    answer_for: str | None = None
    answer_registry: str | None = None
    #: ``enrolment.json``'s device id and recorded registry URL.
    enrolled_id: str | None = None
    enrolled_registry: str | None = None
    #: ``provisioned.json``'s device id: the first sync was verified for this device.
    provisioned_id: str | None = None

    @property
    def provisioned(self) -> bool:
        return self.key_id is not None and self.key_id == self.enrolled_id == self.provisioned_id


@dataclass(frozen=True)
class Request:
    registry: str | None = None
    code: str | None = None
    re_enroll: bool = False


@dataclass(frozen=True)
class Plan:
    """The steps left, in order, and what they work with."""

    steps: tuple[Step, ...]
    #: The registry URL every network step uses.
    registry: str
    #: The device id being replaced by a re-enrolment (for the backup's name and IT's revocation).
    retiring: str | None = None
    #: A --code was given but enrolment is already done: the code stays unused.
    code_unused: bool = False

    @property
    def enrols_next_key(self) -> bool:
        """A re-enrolment enrols ``device.key.next``; the old key stays until the registry answered."""
        return Step.ENROLL in self.steps and Step.RETIRE in self.steps


def check_registry_url(url: str) -> str:
    """An http(s) URL with a host, without a trailing slash; Refusal otherwise."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError:
        raise Refusal(f"--registry {url!r} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refusal(f"--registry {url!r} must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise Refusal(f"--registry {url!r} must be the registry's base URL, without ? or #")
    return url.rstrip("/")


def check_transport(url: str, *, insecure_http: bool) -> None:
    """Plain http only to this machine, unless told the network is closed (``--insecure-http``).

    The enrolment answer carries the lists' token keys and the root key the
    device will trust from then on: over plain http anyone on the path could
    read the keys or plant their own root. https (or a root key pinned with
    ``--root-key``) closes the second; only https closes the first.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or insecure_http or is_loopback_host(parts.hostname or ""):
        return
    raise Refusal(f"--registry {url} is plain http to another machine: the lists' keys would cross the network "
                  "unencrypted; use https://, or add --insecure-http on a closed provisioning network")


def check_root_key(text: str) -> bytes:
    """``--root-key``: the registry's root public key as `gatecheck registry init` prints it, 64 hex digits."""
    cleaned = text.strip().lower().replace(":", "")
    if len(cleaned) != 64 or any(c not in "0123456789abcdef" for c in cleaned):
        raise Refusal("--root-key must be the registry's root public key as 64 hex digits "
                      "(`gatecheck registry init` printed it as root_public_key)")
    return bytes.fromhex(cleaned)


def plan(state: DirState, request: Request) -> Plan:
    """The steps left for ``request`` on a directory in ``state``; Refusal with one line otherwise."""
    given = check_registry_url(request.registry) if request.registry else None

    # An enrolment the registry already answered is finished, whatever the flags say:
    # its code is spent, and the answer is on disk.
    if state.next_key_id is not None and state.answer_for == state.next_key_id:
        return Plan((Step.RETIRE, *_AFTER_ENROLMENT), _registry(given, state.answer_registry),
                    retiring=state.enrolled_id or state.key_id, code_unused=bool(request.code))
    if state.key_id is not None and state.answer_for == state.key_id and state.enrolled_id != state.key_id:
        retire = (Step.RETIRE,) if state.enrolled_id is not None else ()
        return Plan((*retire, *_AFTER_ENROLMENT), _registry(given, state.answer_registry),
                    retiring=state.enrolled_id, code_unused=bool(request.code))

    if request.re_enroll and (state.key_id or state.key_problem or state.enrolled_id):
        _code(request, "--re-enroll needs a new enrolment code (--code) from IT")
        make = () if state.next_key_id else (Step.MAKE_NEXT_KEY,)
        return Plan((*make, Step.ENROLL, Step.RETIRE, *_AFTER_ENROLMENT),
                    _registry(given, state.enrolled_registry), retiring=state.enrolled_id or state.key_id)

    if state.key_problem is not None:
        raise Refusal(f"{state.key_problem}; fix it, or replace the key and the enrolment with"
                      " --re-enroll --code NEW_CODE")
    if state.provisioned:
        where = f" with {state.enrolled_registry}" if state.enrolled_registry else ""
        raise AlreadyProvisioned(f"already provisioned as device {state.key_id}{where}; nothing to do"
                                 " (--re-enroll --code NEW_CODE replaces the enrolment)")
    if state.enrolled_id is not None:
        if state.enrolled_id != state.key_id:
            held = f"device.key is device {state.key_id}" if state.key_id else "device.key is missing"
            raise Refusal(f"enrolment.json is for device {state.enrolled_id} but {held}: run again with"
                          " --re-enroll and a new code")
        if given and state.enrolled_registry and given != state.enrolled_registry:
            raise Refusal(f"this device is enrolled with {state.enrolled_registry}, not {given}; leave out"
                          " --registry to finish its first sync there")
        return Plan((Step.SYNC, Step.VERIFY, Step.FINISH), _registry(given, state.enrolled_registry),
                    code_unused=bool(request.code))

    _code(request, "this device is not enrolled yet: give the enrolment code from IT with --code")
    make = () if state.key_id else (Step.MAKE_KEY,)
    return Plan((*make, Step.ENROLL, *_AFTER_ENROLMENT), _registry(given, None))


def _code(request: Request, missing: str) -> str:
    if not request.code or not request.code.strip():
        raise Refusal(missing)
    return request.code.strip()


def _registry(given: str | None, recorded: str | None) -> str:
    url = given or recorded
    if not url:
        raise Refusal("--registry URL is needed: no registry is recorded in this data directory")
    return url
