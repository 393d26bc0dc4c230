"""The logged-in user, with their roles, kept in the cache between requests.

Every request loads its user from the session. Read from the database, that is one statement whose three
role subqueries Django compiles anew each time: 1.4 ms of CPU per request, the largest single part of a
reader's vote (bench/reader_bench.py). The cached copy is dropped whenever anything that decides who the
user is or what they may do changes: the user row (a deactivation, a new password, a deletion), their
groups from either side, or a group's name or existence. Drops happen when the change commits, and again
at once, so a request can neither keep nor re-cache the old state. Queryset ``update()`` on users sends
no signal and is not used on them; the entry also expires after :data:`SECONDS`. The entry is the user row
(the password hash included: the session check needs it), so the cache must be as private as the database,
as the sessions already require.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

SECONDS = 300


def key(user_id):
    return f"accounts:user:{user_id}"


def get(user_id):
    return cache.get(key(user_id))


def put(user):
    cache.set(key(user.pk), user, SECONDS)


def forget(*user_ids):
    """Drop the cached users now and once the current transaction commits."""
    keys = [key(pk) for pk in user_ids]
    if not keys:
        return
    cache.delete_many(keys)
    transaction.on_commit(lambda: cache.delete_many(keys))


def _user_changed(sender, instance, **kwargs):
    forget(instance.pk)


def _groups_changed(sender, instance, action, reverse, pk_set, **kwargs):
    if reverse:  # group.user_set.add/remove/clear: the users are in pk_set, or for a clear, in the group
        if action in ("post_add", "post_remove"):
            forget(*pk_set)
        elif action == "pre_clear":
            forget(*instance.user_set.values_list("pk", flat=True))
    elif action in ("post_add", "post_remove", "post_clear"):
        forget(instance.pk)


def _group_changed(sender, instance, **kwargs):
    """Roles are group names: a renamed or deleted group changes the roles of its members."""
    if instance.pk is not None:
        forget(*instance.user_set.values_list("pk", flat=True))


def connect():
    User = get_user_model()
    post_save.connect(_user_changed, sender=User, dispatch_uid="accounts.user_cache.user_saved")
    post_delete.connect(_user_changed, sender=User, dispatch_uid="accounts.user_cache.user_deleted")
    m2m_changed.connect(_groups_changed, sender=User.groups.through, dispatch_uid="accounts.user_cache.groups")
    post_save.connect(_group_changed, sender=Group, dispatch_uid="accounts.user_cache.group_saved")
    pre_delete.connect(_group_changed, sender=Group, dispatch_uid="accounts.user_cache.group_deleted")
