@echo off
rem Runs Strom's kafka-topics.exe (one folder up, in bin\) with the given arguments,
rem as Kafka's bin\windows\kafka-topics.bat does. Example:
rem   bin\windows\kafka-topics.bat --bootstrap-server localhost:9092 --list
"%~dp0..\kafka-topics.exe" %*
exit /b %ERRORLEVEL%
