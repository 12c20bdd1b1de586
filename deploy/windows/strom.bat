@echo off
rem Runs Strom's strom.exe (one folder up, in bin\) with the given arguments,
rem the single-process quick start (keeper and broker). Example:
rem   bin\windows\strom.bat --data-dir strom-data
"%~dp0..\strom.exe" %*
exit /b %ERRORLEVEL%
