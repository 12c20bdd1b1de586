@echo off
rem Runs Strom's zookeeper-shell.exe (one folder up, in bin\) with the given arguments,
rem as Kafka's bin\windows\zookeeper-shell.bat does. Example:
rem   bin\windows\zookeeper-shell.bat localhost:2181 ls /
"%~dp0..\zookeeper-shell.exe" %*
exit /b %ERRORLEVEL%
