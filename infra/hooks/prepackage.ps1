# azd prepackage (service api) on Windows: the twin of prepackage.sh. Ships compiled bytecode for the app's own
# modules (Flex Consumption runs the app from a read-only package; the remote build compiles none of the app's code).
$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
Set-Location (Join-Path $PSScriptRoot '..' '..')
$python = $null
foreach ($candidate in @($env:PYTHON313, 'python3.13')) {
    if ($candidate -and (Get-Command $candidate -ErrorAction SilentlyContinue)) { $python = $candidate; break }
}
if (-not $python) {
    [Console]::Error.WriteLine("prepackage: Python 3.13 not found (set PYTHON313): deploying without compiled bytecode; cold starts compile the app's modules")
    exit 0
}
& $python -m compileall -q -f --invalidation-mode checked-hash function_app.py shared
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
$tag = & $python -c 'import sys; print(sys.implementation.cache_tag)'
Write-Output "prepackage: compiled the app's modules for $tag (checked-hash caches)"
