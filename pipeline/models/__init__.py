from .runs import DeviceCheckRun, Run, RunEvent

__all__ = ["DeviceCheckRun", "Run", "RunEvent"]
