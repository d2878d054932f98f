"""``mailctl admin totp enrol|confirm|off|status|require``: admins' two-factor login, from
the host (which needs no code: root on the mail server has every right anyway)."""

from __future__ import annotations

import typer

from mailctl.cli.common import actor, console, context, reports_errors
from mailctl.services import two_factor

app = typer.Typer(help="Two-factor login (TOTP) of the admins.", no_args_is_help=True)

NAME = typer.Argument(..., help="The admin.")


@app.command("enrol")
@reports_errors
def enrol(username: str = NAME) -> None:
    """Make a new secret for an admin: shown once, as text, URI and QR code.

    Scan the QR code with an authenticator app (or type the secret), then turn two-factor
    login on with `mailctl admin totp confirm NAME CODE`.
    """
    with context() as ctx:
        enrolment = two_factor.start_enrolment(ctx, actor(), username)
    # Written as it is: Rich would wrap the blocks of the QR code and colour the URI.
    typer.echo(enrolment.qr_terminal(), nl=False)
    typer.echo(f"secret: {enrolment.secret}")
    typer.echo(f"uri:    {enrolment.uri}")
    console.print(
        f"Then: [bold]mailctl admin totp confirm {enrolment.username} CODE[/] with the code "
        "the app shows.",
        highlight=False,
        soft_wrap=True,
    )


@app.command("confirm")
@reports_errors
def confirm(
    username: str = NAME,
    code: str = typer.Argument(..., help="The 6-digit code the app shows now."),
) -> None:
    """Turn an enrolment on with a first code; prints 10 one-time recovery codes, once."""
    with context() as ctx:
        name, codes = two_factor.confirm_enrolment(ctx, actor(), username, code)
    console.print(
        f"Two-factor login is on for [bold]{name}[/]. Recovery codes (each works once "
        "instead of a code; keep them somewhere safe, they are not shown again):",
        highlight=False,
        soft_wrap=True,
    )
    for recovery in codes:
        typer.echo(f"  {recovery}")


@app.command("off")
@reports_errors
def turn_off(username: str = NAME) -> None:
    """Turn an admin's two-factor login off (its secret and recovery codes are forgotten)."""
    with context() as ctx:
        had = two_factor.remove(ctx, actor(), username, action="disable_totp")
    shown = username.strip()
    message = f"Two-factor login is off for {shown}." if had else f"{shown} had none."
    console.print(message, highlight=False)


@app.command("status")
@reports_errors
def status(username: str = NAME) -> None:
    """Whether an admin has enrolled and confirmed, and how many recovery codes are left."""
    with context() as ctx:
        state = two_factor.state(ctx, username)
    if state.confirmed:
        line = f"on, {state.recovery_codes_left} recovery code(s) left"
    elif state.enrolled:
        line = "enrolled, not confirmed yet (off until `mailctl admin totp confirm`)"
    else:
        line = "off"
    console.print(f"{state.username}: two-factor login {line}.", highlight=False, soft_wrap=True)
    required = "required" if state.required else "not required"
    console.print(f"Two-factor login is {required} on this server.", highlight=False)


@app.command("require")
@reports_errors
def require(
    setting: str = typer.Argument(..., help="on: every admin logs in with a code; off: not."),
) -> None:
    """Require two-factor login of every admin, or not.

    An admin not enrolled yet still logs in with its password, for a token that may only
    enrol: nobody is locked out.
    """
    required = two_factor.parse_switch(setting, "require")
    with context() as ctx:
        missing = two_factor.set_required(ctx, actor(), required)
    if not required:
        console.print("Two-factor login is no longer required.", highlight=False)
        return
    console.print("Two-factor login is required of every admin.", highlight=False)
    if missing:
        console.print(
            f"Not enrolled yet (their next login may only enrol): {', '.join(missing)}.",
            highlight=False,
            soft_wrap=True,
        )
