"""Who else may use a hosted repo: collaborators (a role on one repo) and, for gated repos,
access requests with their decisions (the Hub's `user-access-request` flow)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from hubgate.errors import BadRequest, NotFound
from hubgate.storage.metadata import AccessRequest, Collaborator, MetadataStore, User, utcnow

COLLABORATOR_ROLES = ("read", "write")
REQUEST_STATUSES = ("pending", "accepted", "rejected")


@dataclass(frozen=True)
class Standing:
    """A user's standing on one repo beyond their namespace role."""

    collaborator: str | None = None  # read | write
    request: str | None = None  # pending | accepted | rejected


@dataclass(frozen=True)
class RequestRow:
    id: int
    user: str
    fullname: str
    email: str | None
    status: str
    created_at: dt.datetime
    reason: str | None


class RepoAccess:
    def __init__(self, metadata: MetadataStore) -> None:
        self.metadata = metadata

    def standing(self, repo_pk: int, user_name: str) -> Standing:
        with self.metadata.session() as session:
            user_id = session.scalar(select(User.id).where(User.name == user_name))
            if user_id is None:
                return Standing()
            collaborator = session.get(Collaborator, (repo_pk, user_id))
            request = _request(session, repo_pk, user_id)
            return Standing(collaborator.role if collaborator else None, request.status if request else None)

    def collaborations(self, user_name: str) -> dict[int, str]:
        """Repo pk -> role, for every repo the user collaborates on (for listings)."""
        with self.metadata.session() as session:
            query = select(Collaborator.repo_pk, Collaborator.role).join(Collaborator.user).where(User.name == user_name)
            rows = session.execute(query)
            return {pk: role for pk, role in rows}

    # -- collaborators ---------------------------------------------------------------------
    def set_collaborator(self, repo_pk: int, user_name: str, role: str) -> None:
        if role not in COLLABORATOR_ROLES:
            raise BadRequest(f"The collaborator role must be one of {', '.join(COLLABORATOR_ROLES)}")
        with self.metadata.session() as session:
            user = _user(session, user_name)
            found = session.get(Collaborator, (repo_pk, user.id))
            if found is None:
                session.add(Collaborator(repo_pk=repo_pk, user_id=user.id, role=role))
            else:
                found.role = role

    def remove_collaborator(self, repo_pk: int, user_name: str) -> None:
        with self.metadata.session() as session:
            user = _user(session, user_name)
            found = session.get(Collaborator, (repo_pk, user.id))
            if found is None:
                raise NotFound(f"{user_name} is not a collaborator of this repo")
            session.delete(found)

    def collaborators(self, repo_pk: int) -> dict[str, str]:
        with self.metadata.session() as session:
            query = select(User.name, Collaborator.role).join(Collaborator.user).where(Collaborator.repo_pk == repo_pk)
            rows = session.execute(query.order_by(User.name))
            return {name: role for name, role in rows}

    # -- access requests -------------------------------------------------------------------
    def request(self, repo_pk: int, user_name: str, *, automatic: bool) -> str:
        """Ask for access; accepted at once on an `auto` gate. An existing request keeps its decision."""
        with self.metadata.session() as session:
            user = _user(session, user_name)
            found = _request(session, repo_pk, user.id)
            if found is not None:
                return found.status
            status = "accepted" if automatic else "pending"
            decided = utcnow() if automatic else None
            session.add(AccessRequest(repo_pk=repo_pk, user_id=user.id, status=status, decided_at=decided))
            return status

    def requests(self, repo_pk: int, status: str) -> list[RequestRow]:
        if status not in REQUEST_STATUSES:
            raise BadRequest(f"status must be one of {', '.join(REQUEST_STATUSES)}")
        with self.metadata.session() as session:
            rows = session.execute(
                select(AccessRequest, User)
                .join(AccessRequest.user)
                .where(AccessRequest.repo_pk == repo_pk, AccessRequest.status == status)
                .order_by(AccessRequest.id)
            )
            return [RequestRow(r.id, u.name, u.fullname, u.email, r.status, r.created_at, r.reason) for r, u in rows]

    def decide(self, repo_pk: int, user_name: str | None, request_id: int | None, status: str, reason: str | None) -> str:
        """Move a request to `status` (pending, accepted, rejected); returns the user's name."""
        if status not in REQUEST_STATUSES:
            raise BadRequest(f"status must be one of {', '.join(REQUEST_STATUSES)}")
        with self.metadata.session() as session:
            query = select(AccessRequest).where(AccessRequest.repo_pk == repo_pk)
            if request_id is not None:
                query = query.where(AccessRequest.id == request_id)
            else:
                query = query.where(AccessRequest.user_id == _user(session, user_name or "").id)
            found = session.scalar(query)
            if found is None:
                raise NotFound("No access request from this user for this repo")
            if found.status == status:
                raise NotFound(f"The access request is already {status}")
            found.status, found.decided_at, found.reason = status, utcnow(), reason if status == "rejected" else None
            return found.user.name

    def grant(self, repo_pk: int, user_name: str) -> None:
        """Give a user access directly (with or without a request)."""
        with self.metadata.session() as session:
            user = _user(session, user_name)
            found = _request(session, repo_pk, user.id)
            if found is not None and found.status == "accepted":
                raise BadRequest(f"{user_name} already has access to this repo")
            if found is None:
                session.add(AccessRequest(repo_pk=repo_pk, user_id=user.id, status="accepted", decided_at=utcnow()))
            else:
                found.status, found.decided_at, found.reason = "accepted", utcnow(), None


def _request(session: Session, repo_pk: int, user_id: int) -> AccessRequest | None:
    return session.scalar(select(AccessRequest).where(AccessRequest.repo_pk == repo_pk, AccessRequest.user_id == user_id))


def _user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound(f"No user named {name!r}")
    return user
