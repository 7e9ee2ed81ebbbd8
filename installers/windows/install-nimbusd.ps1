<#
.SYNOPSIS
Starts nimbusd.exe at every logon of the current user, through a Scheduled
Task, and starts it now. -Uninstall removes the task.

.DESCRIPTION
Why a per-user Scheduled Task and not a Windows service: a service runs in
session 0, apart from the user's desktop session. A drive it mounted would not
show in the user's Explorer, and it could not reach the user's Credential
Manager, the keyring nimbusd uses on Windows. A task that runs as the
user, only while the user is logged on, is in that session and has both.

The task runs with RunLevel Limited (no elevation): nimbusd needs no
administrator rights, only the user's own files, network and credentials.

Your config (%APPDATA%\nimbus\config), local state and logs
(%LOCALAPPDATA%\nimbus\data) are never touched, not even by -Uninstall.

.PARAMETER Path
Where nimbusd.exe is. Default: %ProgramFiles%\Nimbus\nimbusd.exe.

.PARAMETER Uninstall
Stop nimbusd and remove the task.

.EXAMPLE
powershell -ExecutionPolicy Bypass -File installers\windows\install-nimbusd.ps1

.EXAMPLE
powershell -ExecutionPolicy Bypass -File installers\windows\install-nimbusd.ps1 -Path C:\src\nimbus\target\release\nimbusd.exe

.EXAMPLE
powershell -ExecutionPolicy Bypass -File installers\windows\install-nimbusd.ps1 -Uninstall
#>
[CmdletBinding()]
param(
    [string]$Path = (Join-Path $env:ProgramFiles 'Nimbus\nimbusd.exe'),
    [switch]$Uninstall
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

# DOMAIN\name (or COMPUTER\name): the form the logon trigger and the
# principal want.
$user = [System.Security.Principal.WindowsIdentity]::GetCurrent().Name
# Task names are shared by every user of the computer; the user name keeps
# two users' tasks apart.
$taskName = "Nimbus nimbusd ($env:USERNAME)"
$taskPath = '\'

function Fail([string]$message) {
    [Console]::Error.WriteLine("install-nimbusd.ps1: $message")
    exit 1
}

function Stop-Nimbusd($task) {
    if ($task.State -eq 'Running') {
        # Ending the task ends nimbusd.exe at once: Windows has no SIGTERM to
        # send to a program without a console. Changes not yet uploaded stay
        # in the local state and go up the next time nimbusd runs.
        Write-Host 'Stopping nimbusd...'
        Stop-ScheduledTask -TaskName $taskName -TaskPath $taskPath
    }
}

$existing = Get-ScheduledTask -TaskName $taskName -TaskPath $taskPath -ErrorAction SilentlyContinue

if ($Uninstall) {
    if ($null -eq $existing) {
        Write-Host "There is no task '$taskName'; nothing to remove."
    } else {
        Stop-Nimbusd $existing
        Unregister-ScheduledTask -TaskName $taskName -TaskPath $taskPath -Confirm:$false
        Write-Host "Removed the task '$taskName'."
    }
    Write-Host 'nimbusd is uninstalled. Your config, local state and logs are still there.'
    exit 0
}

if (-not (Test-Path -LiteralPath $Path -PathType Leaf)) {
    Fail "nimbusd.exe is not at $Path. Install Nimbus first, or pass -Path."
}
$Path = (Resolve-Path -LiteralPath $Path).ProviderPath

# Run elevated, this would still register the task for the account that is
# elevated, which is not always the one at the desktop.
$principalNow = [System.Security.Principal.WindowsPrincipal]::new([System.Security.Principal.WindowsIdentity]::GetCurrent())
if ($principalNow.IsInRole([System.Security.Principal.WindowsBuiltInRole]::Administrator)) {
    Write-Warning "This PowerShell is elevated. The task is registered for $user; if that is not the account that will use the drive, run this again from a normal PowerShell signed in as that user."
}

# Quoted, because the path usually has a space (Program Files).
$action = New-ScheduledTaskAction -Execute "`"$Path`"" -WorkingDirectory (Split-Path -Parent $Path)
# At this user's logon only, not at anyone's.
$trigger = New-ScheduledTaskTrigger -AtLogOn -User $user
# Interactive: runs in the user's own session, only while they are logged
# on, and stores no password. Limited: no elevation.
$principal = New-ScheduledTaskPrincipal -UserId $user -LogonType Interactive -RunLevel Limited
$settings = New-ScheduledTaskSettingsSet `
    -ExecutionTimeLimit ([TimeSpan]::Zero) `
    -RestartCount 3 `
    -RestartInterval (New-TimeSpan -Minutes 1) `
    -AllowStartIfOnBatteries `
    -DontStopIfGoingOnBatteries `
    -MultipleInstances IgnoreNew `
    -Priority 4
# Why each setting:
#  ExecutionTimeLimit 0: no limit. The default (3 days) would end nimbusd
#    while it serves the drive.
#  RestartCount 3 every minute: Task Scheduler's retry when the task fails
#    (1 minute is the shortest interval it accepts). Its documentation
#    promises this for a task that could not be started; whether it also
#    restarts nimbusd after it exits with an error is not stated.
#  Battery settings: by default a task does not start on battery and is
#    ended when the laptop is unplugged; the drive must keep running.
#  IgnoreNew: never a second nimbusd (a second logon, a manual start).
#  Priority 4: normal CPU, disk and memory priority. The default, 7, is
#    below normal, and the drive answers Explorer and every program that opens
#    a file on it.

try {
    if ($null -ne $existing) {
        # Register -Force replaces the task but leaves a running nimbusd
        # running the old binary; stop it first.
        Stop-Nimbusd $existing
    }
    Register-ScheduledTask -TaskName $taskName -TaskPath $taskPath `
        -Description 'Nimbus background service (nimbusd): keeps your encrypted drives mounted and synced.' `
        -Action $action -Trigger $trigger -Principal $principal -Settings $settings -Force | Out-Null
} catch {
    # The error comes through CIM, whose exception types and codes vary
    # between Windows versions: show its message as it is.
    Fail "Windows refused to create the task: $($_.Exception.Message) If that says access is denied, a policy on this computer may let only administrators create logon tasks: run this from an elevated PowerShell while signed in as $user."
}
Write-Host "Registered the task '$taskName' (runs $Path at each logon of $user)."

Start-ScheduledTask -TaskName $taskName -TaskPath $taskPath
# Give it a moment to fail on a bad config before saying it runs.
Start-Sleep -Seconds 2
$task = Get-ScheduledTask -TaskName $taskName -TaskPath $taskPath
if ($task.State -eq 'Running') {
    Write-Host 'nimbusd is running and will start at each logon.'
    Write-Host "Logs: $env:LOCALAPPDATA\nimbus\data\logs"
} else {
    $info = Get-ScheduledTaskInfo -TaskName $taskName -TaskPath $taskPath
    Fail ("nimbusd did not stay running (task state {0}, last result 0x{1:X8}). See the logs in {2}, and the task's History in Task Scheduler." -f $task.State, $info.LastTaskResult, "$env:LOCALAPPDATA\nimbus\data\logs")
}
