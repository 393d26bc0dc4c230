from django.core.management.base import CommandError


def write_report(command, report):
    """Print an import report's issues and summary; raise CommandError (exit 1) if a case was refused."""
    for issue in report.issues:
        style = {"error": command.style.ERROR, "warning": command.style.WARNING}.get(issue.level, str)
        command.stdout.write(style(str(issue)))
    summary = report.summary()
    command.stdout.write(command.style.SUCCESS(summary) if report.ok else command.style.ERROR(summary))
    if not report.ok:
        raise CommandError(f"{len(report.cases_failed)} case(s) were not imported: {', '.join(report.cases_failed)}")
