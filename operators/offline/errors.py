"""Errors of the offline area (stable problem codes; the kernel's refusal codes,
`cbdc.offline`, are reused where they mean the same)."""

from __future__ import annotations

from cbdc import offline as kernel
from cbdc.errors import Conflict, DomainError, Forbidden, NotFound


class UnknownDevice(NotFound):
    code = "offline_unknown_device"
    title = "No such offline device at this operator"


class NotYourDevice(Forbidden):
    code = "offline_not_your_device"
    title = "The device is registered to another wallet"


class DeviceRevoked(Forbidden):
    code = kernel.REVOKED
    title = "The device's certificate is revoked"


class PurseCapExceeded(DomainError):
    code = "offline_purse_cap_exceeded"
    status = 422
    title = "The purse would hold more than its certificate's cap"


class DeviceKeyTaken(Conflict):
    code = "offline_device_key_taken"
    title = "This public key is already registered for another device or wallet"


class OfflineRejected(DomainError):
    """A protocol check failed (`cbdc.offline.OfflineRefusal`): the kernel's code."""

    status = 422
    title = "The offline message does not pass the protocol's checks"

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


def rejected(refusal: kernel.OfflineRefusal) -> OfflineRejected:
    return OfflineRejected(refusal.code, refusal.detail)
