"""Bounded types for the services' request models and parameters. Every string a client sends has a
maximum length and every integer fits the database (common.limits); a unit test keeps every route so."""

from typing import Annotated

from pydantic import Field, StringConstraints

from common import limits

Code = Annotated[str, StringConstraints(max_length=limits.CODE_LENGTH)]
Name = Annotated[str, StringConstraints(max_length=limits.NAME_LENGTH)]
Text = Annotated[str, StringConstraints(max_length=limits.TEXT_LENGTH)]
Secret = Annotated[str, StringConstraints(max_length=limits.SECRET_LENGTH)]
Position = Annotated[int, Field(ge=0, le=limits.MAX_INT64)]  # sequence numbers, revisions, versions, offsets
EventInt = Annotated[int, Field(ge=1, le=limits.MAX_AVRO_INT)]  # a positive number carried in an event
