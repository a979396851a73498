"""The service's Tortoise ORM models module (``RegisterTortoise(..., modules={"models": [this]})``)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from .schema import FORTUNE, WORLD


class World(Model):
    id = fields.IntField(primary_key=True, generated=False)
    randomnumber = fields.IntField()

    class Meta:
        table = WORLD


class Fortune(Model):
    id = fields.IntField(primary_key=True, generated=False)
    message = fields.CharField(max_length=2048)

    class Meta:
        table = FORTUNE
