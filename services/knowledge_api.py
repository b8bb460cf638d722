"""HTTP routes for residents and call-centre staff: guided triage and medical questions.

Neither route reads personal data: a complaint is answered from the knowledge graph and the public
doctor directory, and the text is not stored. Bad input gets a coded answer (HG-1003 empty,
HG-1004 too long, HG-1005 not Chinese, HG-1006 nothing recognised), never a crash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.access import Permission
from services.access.web import permit
from services.knowledge import QuestionAnswering
from services.triage import Triage

MAX_TEXT = 500


class Complaint(BaseModel):
    text: str = Field(..., description="主诉 the complaint in everyday Chinese, e.g. 我头疼三天了，有点发烧",
                      max_length=MAX_TEXT * 2)
    age_years: float | None = Field(None, ge=0, le=130, description="年龄 age in years (months as a fraction)")
    sex: str | None = Field(None, pattern="^[12]$", description="性别 1 男 male, 2 女 female (GB/T 2261.1)")
    pregnant: bool | None = Field(None, description="是否怀孕 pregnant")
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    division: str | None = Field(None, pattern="^[0-9]{2,6}$", description="所在区划 GB/T 2260 code")
    doctors: int = Field(5, ge=0, le=20, description="推荐医生数 doctors to recommend")


class Question(BaseModel):
    question: str = Field(..., description="问题 e.g. 糖尿病不能吃什么", max_length=MAX_TEXT * 2)


def knowledge_router(triage: Callable[[], Triage], qa: Callable[[], QuestionAnswering]) -> APIRouter:
    router = APIRouter(tags=["triage and knowledge"])

    @router.post("/triage", **permit(Permission.PUBLIC))
    def assess(body: Complaint) -> dict[str, Any]:
        """智能导诊 Guided triage: red flags first, then ranked conditions (not a diagnosis), departments
        top-3 with confidence, a clarifying question when unsure, and doctors nearby — each explained."""
        return triage().assess(body.text, age_years=body.age_years, sex=body.sex, pregnant=body.pregnant,
                               latitude=body.latitude, longitude=body.longitude, division=body.division,
                               doctors=body.doctors)

    @router.post("/ask", **permit(Permission.PUBLIC))
    def ask(body: Question) -> dict[str, Any]:
        """医学知识问答 Medical question answering; every answer cites the graph facts it comes from, and
        says "I don't know" when the graph has none."""
        return qa().ask(body.question)

    return router
