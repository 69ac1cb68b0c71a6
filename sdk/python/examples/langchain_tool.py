"""A LangChain tool that pays an invoice only once Sentinel approved it.

    pip install ./sdk/python langchain-core
    SENTINEL_ADDR=127.0.0.1:50051 python examples/langchain_tool.py

The guarded function raises ``NotApproved`` when Sentinel declines; the tool turns that into
an answer the model can read, so the agent learns why instead of crashing.
"""

from __future__ import annotations

from langchain_core.tools import BaseTool, tool

from sentinel_sdk import Client, NotApproved, current_decision


def make_pay_invoice_tool(client: Client, agent_id: str = "billing-bot") -> BaseTool:
    @client.guarded(action="PAY_INVOICE", agent_id=agent_id, timeout=600)
    def pay(amount: float, vendor: str) -> str:
        decision = current_decision()
        assert decision is not None  # set for every guarded call that runs
        # ... call the payment provider here ...
        return f"paid {amount} to {vendor} (Sentinel intent {decision.intent_id})"

    @tool
    def pay_invoice(amount: float, vendor: str) -> str:
        """Pay an invoice of `amount` dollars to `vendor`. A human may need to approve."""
        try:
            return pay(amount=amount, vendor=vendor)
        except NotApproved as e:
            return f"not paid: Sentinel said {e.decision.state}. {e.decision.analysis}"

    return pay_invoice


if __name__ == "__main__":
    with Client() as sentinel:
        pay_invoice = make_pay_invoice_tool(sentinel)
        print(pay_invoice.invoke({"amount": 420, "vendor": "AWS"}))
